"""alertd: an alerting agent for DeltaDeFi and SoDEX account streams."""

__version__ = "0.1.0"
