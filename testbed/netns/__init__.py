from testbed.netns.ns import DIE_WITH_PARENT, CommandFailed, Namespace, die_with_parent, ns_inode

__all__ = ["DIE_WITH_PARENT", "Namespace", "CommandFailed", "die_with_parent", "ns_inode"]
