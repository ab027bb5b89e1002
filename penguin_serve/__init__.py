"""penguin-serve: the Palmer penguin classifier.

Shared by training, serving and batch scoring: contract (request and response schema, feature encoding,
the model's name), answers (from the model's output to every form clients read), model (the model files and
their checks), storage (Cloud Storage), loading (which model to serve), configuration (settings read from the
environment) and settings (the service's). The deploy's settings live with the deploy commands (scripts/deploy/).
training/ holds what only train.py needs, serving/ what only the BentoML service needs, jobs/ the bulk
scoring job that runs in the same image; the bento packs the shared modules, serving/ and jobs/, not
training/.
"""
