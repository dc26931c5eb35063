"""The multicast chip class (SpiNNaker-class machines): many small processors per chip that
send spikes as multicast packets labelled by a key; each chip's router forwards a packet by
its first matching key/mask entry (docs/multicast-target.md)."""
