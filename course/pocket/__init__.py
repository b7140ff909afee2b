"""The pocket CLIP: a small, offline, reproducibly trained CLIP shipped with the course."""
