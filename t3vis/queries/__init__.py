"""What the app reads: example frames and filters, training curves, head reads, the sandboxed SQL console and its example queries."""
