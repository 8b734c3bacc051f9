"""pynq.ps stand-in: the PS clock settings finn-plus-driver writes."""


class Clocks:
    fclk0_mhz = 100.0
