"""The benchmark harness (`make bench`). Never part of the production URLs or settings."""
