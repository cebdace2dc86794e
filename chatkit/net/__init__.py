"""Networking helpers below every other layer: addresses (`addresses`), network interfaces
(`interfaces`) and socket set-up (`sockets`). No chat logic, no protocol."""
