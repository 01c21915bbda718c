"""The data stage: readers, cleaning filters, exact + MinHash dedup, PII scrubbing, language id.

Every artifact of this stage has the same layout: ``docs/part-*.parquet`` (columns ``id``,
``text``, ``source``, ``title``, all strings) plus a ``report.json`` whose counts always
satisfy ``num_in == num_kept + sum(dropped_by_reason.values())``.
"""
