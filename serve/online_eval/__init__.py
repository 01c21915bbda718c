"""Online evaluation: sample live requests, trace and score them, take feedback, watch drift."""
