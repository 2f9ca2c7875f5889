"""Device simulators: seeded virtual patients and misbehaving devices on the wire contract."""
