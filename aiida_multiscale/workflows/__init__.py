"""Work chains of the four rungs and of the whole chain."""
