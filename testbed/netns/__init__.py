from testbed.netns.ns import CommandFailed, Namespace, die_with_parent, ns_inode

__all__ = ["Namespace", "CommandFailed", "die_with_parent", "ns_inode"]
