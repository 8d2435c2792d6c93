"""What a node counts, and how Prometheus reads it (docs/operations.md).

The stanza path only adds to plain integers (``tally.Tally``); they become
Prometheus samples when someone scrapes ``/metrics`` (``collector``), so a node
nobody scrapes pays a dictionary increment per stanza and nothing more.
"""
