"""SshKey: the SSH key pair the deployment logs in with; generated unless one is given."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_tls as tls


@dataclass
class SshKeyArgs:
    """public_key: an OpenSSH public key to use; None generates an RSA 4096 key pair (RSA because
    Alibaba Cloud imports rsa, dsa and ecdsa keys only, and one key type serves every cloud).
    private_key: the private half of public_key (a secret), required when public_key is given."""

    public_key: str | None = None
    private_key: pulumi.Input[str] | None = None


class SshKey(pulumi.ComponentResource):
    """Outputs: ``public_key`` (OpenSSH line), ``private_key`` (secret, OpenSSH PEM),
    ``generated`` (True when this component created the key)."""

    public_key: pulumi.Output[str]
    private_key: pulumi.Output[str]
    generated: bool

    def __init__(self, name: str, args: SshKeyArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("qwen:access:SshKey", name, None, opts)
        self.generated = args.public_key is None
        if args.public_key is None:
            key = tls.PrivateKey(f"{name}-key", algorithm="RSA", rsa_bits=4096, opts=pulumi.ResourceOptions(parent=self))
            self.public_key = key.public_key_openssh.apply(lambda k: k.strip())
            self.private_key = pulumi.Output.secret(key.private_key_openssh)
        else:
            if args.private_key is None:
                raise ValueError("SshKey: private_key is required when public_key is given")
            self.public_key = pulumi.Output.from_input(args.public_key)
            self.private_key = pulumi.Output.secret(args.private_key)
        self.register_outputs({"public_key": self.public_key, "private_key": self.private_key})
