"""Reads run summaries, joins the papers' numbers, writes tables."""
