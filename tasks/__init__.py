"""dataflywheel: the steps of the self-improvement cycle, one module each."""
