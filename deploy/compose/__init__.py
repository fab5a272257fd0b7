"""Vigie with Docker: compose file, image and the one-shot setup of its security."""
