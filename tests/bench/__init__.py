"""`make bench`: proxy throughput/latency and run start-up. Not collected by pytest."""
