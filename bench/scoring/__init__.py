"""VIEW360+ scoring: Hungarian assignment on spatio-temporal mask IoU, then Cap, IoU, Fsc, FPE."""
