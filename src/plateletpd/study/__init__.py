"""Studies: virtual arms with dose rules, trials from trial files, sweeps, endpoints.

* :mod:`~plateletpd.study.cohort`: one arm's patients under its treatment and rules;
* :mod:`~plateletpd.study.endpoints`: endpoint definitions (response, times to recovery);
* :mod:`~plateletpd.study.trial`: trial files -> arms -> per-patient endpoints and summaries;
* :mod:`~plateletpd.study.sweep`: a trial's arms over a grid of doses, delays, durations;
* :mod:`~plateletpd.study.statistics`: binomial intervals, Kaplan-Meier;
* :mod:`~plateletpd.study.distributed`: trials, sweeps, replicates, cohorts on a Dask cluster;
* :mod:`~plateletpd.study.sensitivity`: Sobol indices and Morris screening (SALib);
* :mod:`~plateletpd.study.optimisation`: the least dose reaching a response target.
"""
