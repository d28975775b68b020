"""Evaluation: a question set and passages in -> recall@k and MRR per ranking step out."""
