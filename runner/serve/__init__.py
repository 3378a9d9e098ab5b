"""`coatcheck serve`: the scheduler, its HTTP triggers and their pure checks."""
