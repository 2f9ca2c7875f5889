"""The device gateway: the MQTT wire contract, device authentication material and the
ingest pipeline that validates, attributes, stores and only then acknowledges readings."""
