"""A study: one validated config of models, mixes, evaluations and analyses, planned as hashed steps and run."""
