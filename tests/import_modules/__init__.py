"""Hand-written modules for `archdsl import`'s tests, as a user's package would hold them."""
