"""ShopPulse: real-time e-commerce metrics from store webhooks."""

__version__ = "0.1.0"
