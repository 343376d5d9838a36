"""What every layer uses: the user's error type and atomic file writes."""
