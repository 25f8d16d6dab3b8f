"""The models a run trains and the study that chooses their settings."""
