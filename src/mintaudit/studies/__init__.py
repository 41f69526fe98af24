"""Studies: experiments built on the audits (beside the work-directory layer, never imported by the core).

- :mod:`mintaudit.studies.factors`: what makes a model auditable, training factors varied one at a time.
"""
