"""The coordinators' side of a case: the queue, statuses and moves, actions and cards."""
