"""Fakes of the outside world (vendor REST APIs), never of smsfold's own parts."""
