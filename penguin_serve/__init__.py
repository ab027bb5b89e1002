"""penguin-serve: the Palmer penguin classifier.

Shared by training, serving and batch scoring: contract (request and response schema, feature encoding),
model (the model files and their checks), storage (Cloud Storage), loading (which model to serve), settings.
training/ holds what only train.py needs, serving/ what only the BentoML service needs; the bento packs the
shared modules and serving/ only.
"""
