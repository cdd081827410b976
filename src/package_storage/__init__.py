"""package-storage: stores, stages and serves Elastic integration packages."""

__version__ = "0.1.0"

# The EPR API version this server reports and conforms to (spec §2.1).
EPR_COMPAT_VERSION = "1.40.1"
