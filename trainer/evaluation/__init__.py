"""Scoring what is served: ranking metrics, bootstrap intervals, the decisions they drive."""
