"""The whole lab: the sweep over seeds and ranks, and the report written from its results."""
