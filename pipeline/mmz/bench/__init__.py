"""``mmz bench``: mmz against the classical tools on the same files, with verified round trips."""
