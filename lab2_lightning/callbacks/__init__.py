"""Callbacks: the progress bar, and the work that needs the data (the yardsticks of Exercise 1, figures)."""
