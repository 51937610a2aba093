"""Job code: the registry of job types, the progress API jobs report through, and the jobs themselves.

`jobs` imports neither `app` nor `workers`; both of those import from here.
"""
