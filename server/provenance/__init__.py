"""Provenance kept beyond one file: the manifest repository (docs/repository.md)."""
