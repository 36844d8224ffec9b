"""The chatbot's read-only JSON API at /api/v1/: booking status, availability, session types."""
