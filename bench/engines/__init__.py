"""How `vigil360 bench run` spreads videos over workers: one process (`local`) or Ray actors (`ray`).

Both engines run the same `VideoRunner` (models loaded once per worker, the loop in offline
mode) and hand each finished video to the same `PredictionStore`, so their outputs are the same
files, byte for byte, and a job can be resumed by either.
"""
