"""What tictactoe and connect4 share: rules, exact solver, batched search, self-play, training.

Not a domain itself (no config.py): the `tictactoe` and `connect4` packages are thin domains that
name a `Game` and their params section; everything else is written once here.
"""
