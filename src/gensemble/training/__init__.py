"""Training one member: its config and networks (member.py), the one-member loop and the GAN round
every scheme shares (loop.py), the stacked engine that trains same-shaped members as one (stacked.py),
and the memory estimate made before anything is allocated (memory.py)."""
