"""Tools for people who write rules: rule tests, explain, record and replay, test
notifications and editor schemas, all on the daemon's own core."""
