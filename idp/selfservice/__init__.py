"""What customers do for themselves: the account pages, registration, recovery of a
forgotten password or username, activation letters. May import every package but
``cli`` and ``demo``.
"""
