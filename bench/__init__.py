"""`make bench` (`python -m bench`): speed figures, each against a baseline run in the same run."""
