"""The domain: plain Python rules about notes, independent of any transport or database."""
