"""edge-rate-limit core: exact per-key limits, PDK-free and clock-injectable.

``limits`` describes a limit and a decision, ``sliding_window`` and ``gcra`` are the two
algorithms, ``local_store`` keeps their state process-wide, ``headers`` renders decisions as
response headers. Nothing here imports kong-pdk; the plugin entry is a thin layer on top.
"""
