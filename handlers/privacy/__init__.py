"""A patient's data rights and retention: their copy, erasure, and what is removed when."""
