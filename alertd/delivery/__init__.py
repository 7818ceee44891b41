"""Everything after a rule fired: the outbox, the per-notifier workers and the Apprise adapter.

The stages run in this order: `outbox` (durable rows, one per alert and URL, held in quiet
hours), `worker` (one thread per notifier, rate-limited, folding what the limit holds back
into digests), `notify` (the only module that imports apprise).
"""
