"""Network: a VPC whose training, processing and endpoint subnets have no internet route.

NAT gateways and interface endpoints bill by the hour whether or not a job runs, so they
are off unless the settings ask for them; the S3 gateway endpoint is free and always on.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from finetuning.platform import PlatformParameter
from stacks.compliance import suppress
from stacks.discovery import publish_parameter
from stacks.log_groups import encrypted_log_group
from stacks.settings import PlatformSettings

TRAINING_SUBNETS = "training"
PROCESSING_SUBNETS = "processing"
ENDPOINT_SUBNETS = "endpoints"
PUBLIC_SUBNETS = "public"

# The AWS APIs a training job, an endpoint or a function inside the VPC calls when
# there is no NAT gateway (settings.network.interface_endpoints).
INTERFACE_ENDPOINT_SERVICES: dict[str, ec2.InterfaceVpcEndpointAwsService] = {
    "SageMakerApi": ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_API,
    "SageMakerRuntime": ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_RUNTIME,
    "Bedrock": ec2.InterfaceVpcEndpointAwsService.BEDROCK,
    "BedrockRuntime": ec2.InterfaceVpcEndpointAwsService.BEDROCK_RUNTIME,
    "Sts": ec2.InterfaceVpcEndpointAwsService.STS,
    "CloudWatchLogs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    "EcrApi": ec2.InterfaceVpcEndpointAwsService.ECR,
    "EcrDocker": ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
    "StepFunctions": ec2.InterfaceVpcEndpointAwsService.STEP_FUNCTIONS,
    "Ssm": ec2.InterfaceVpcEndpointAwsService.SSM,
}


class NetworkStack(Stack):
    """VPC, S3 gateway endpoint, flow logs and the training security group."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: PlatformSettings,
        key: kms.IKey,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        net = settings.network
        private_type = (
            ec2.SubnetType.PRIVATE_WITH_EGRESS
            if net.nat_gateways
            else ec2.SubnetType.PRIVATE_ISOLATED
        )
        subnets = [
            ec2.SubnetConfiguration(name=name, subnet_type=private_type, cidr_mask=24)
            for name in (TRAINING_SUBNETS, PROCESSING_SUBNETS, ENDPOINT_SUBNETS)
        ]
        if net.nat_gateways:
            subnets.insert(
                0,
                ec2.SubnetConfiguration(
                    name=PUBLIC_SUBNETS,
                    subnet_type=ec2.SubnetType.PUBLIC,
                    cidr_mask=26,
                    map_public_ip_on_launch=False,
                ),
            )

        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(net.vpc_cidr),
            max_azs=net.max_azs,
            nat_gateways=net.nat_gateways,
            subnet_configuration=subnets,
            restrict_default_security_group=True,
            gateway_endpoints={
                "S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3)
            },
        )
        self._drop_redundant_depends_on()
        for public_subnet in self.vpc.public_subnets:
            for pack in ("HIPAA.Security", "NIST.800.53.R5"):
                suppress(
                    public_subnet,
                    f"{pack}-VPCNoUnrestrictedRouteToIGW",
                    "Public subnets exist only when settings ask for NAT gateways; they hold "
                    "nothing but the NAT gateways, whose internet route is their purpose.",
                )
        self.training_subnets = ec2.SubnetSelection(subnet_group_name=TRAINING_SUBNETS)
        self.endpoint_subnets = ec2.SubnetSelection(subnet_group_name=ENDPOINT_SUBNETS)

        self._add_flow_logs(settings, key)

        # Multi-node training: members talk only to each other; HTTPS out reaches S3 (the
        # gateway endpoint) and the interface endpoints. Routing, not this group, is what
        # keeps isolated subnets off the internet.
        self.training_security_group = ec2.SecurityGroup(
            self,
            "TrainingSecurityGroup",
            vpc=self.vpc,
            description="SageMaker training and processing jobs: member-to-member traffic only",
            allow_all_outbound=False,
        )
        sg = self.training_security_group
        sg.add_ingress_rule(sg, ec2.Port.all_traffic(), "Distributed training between members")
        sg.add_egress_rule(sg, ec2.Port.all_traffic(), "Distributed training between members")
        sg.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to S3 and AWS API endpoints"
        )
        for pack in ("HIPAA.Security", "NIST.800.53.R5"):
            suppress(
                sg,
                f"{pack}-EC2RestrictedCommonPorts",
                "The only ingress rule admits members of this same group (distributed "
                "training traffic on any port); nothing outside the group can reach it.",
            )

        if net.interface_endpoints:
            self._add_interface_endpoints(net.vpc_cidr)

        subnet_ids = self.vpc.select_subnets(subnet_group_name=TRAINING_SUBNETS).subnet_ids
        publish_parameter(self, settings, PlatformParameter.VPC_ID, self.vpc.vpc_id)
        publish_parameter(
            self,
            settings,
            PlatformParameter.TRAINING_SUBNET_IDS,
            ",".join(subnet_ids),
        )
        publish_parameter(
            self,
            settings,
            PlatformParameter.TRAINING_SECURITY_GROUP_ID,
            sg.security_group_id,
        )

    def _drop_redundant_depends_on(self) -> None:
        """CDK's default-security-group provider depends on its role twice (DependsOn and
        GetAtt); cfn-lint warns (W3005). The GetAtt alone keeps the order."""
        provider = self.node.try_find_child("Custom::VpcRestrictDefaultSGCustomResourceProvider")
        if provider is not None:
            handler = provider.node.find_child("Handler")
            handler.add_deletion_override("DependsOn")

    def _add_flow_logs(self, settings: PlatformSettings, key: kms.IKey) -> None:
        log_group = encrypted_log_group(
            self,
            "FlowLogGroup",
            key=key,
            retention_days=settings.network.flow_log_retention_days,
        )
        role = iam.Role(
            self,
            "FlowLogRole",
            assumed_by=iam.ServicePrincipal(
                "vpc-flow-logs.amazonaws.com",
                conditions={
                    "StringEquals": {"aws:SourceAccount": self.account},
                    "ArnLike": {
                        "aws:SourceArn": f"arn:{self.partition}:ec2:{self.region}:"
                        f"{self.account}:vpc-flow-log/*"
                    },
                },
            ),
            description="Lets VPC Flow Logs write to the platform's flow log group",
        )
        for pack in ("HIPAA.Security", "NIST.800.53.R5"):
            suppress(
                role,
                f"{pack}-IAMNoInlinePolicy",
                "The inline policy is CDK's grant of logs:CreateLogStream/PutLogEvents on "
                "this one flow-log group; it lives and dies with this single-purpose role.",
            )
        self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(log_group, role),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )

    def _add_interface_endpoints(self, vpc_cidr: str) -> None:
        endpoint_sg = ec2.SecurityGroup(
            self,
            "EndpointSecurityGroup",
            vpc=self.vpc,
            description="Interface endpoints: HTTPS from inside the VPC only",
            allow_all_outbound=False,
        )
        # The literal CIDR from settings (not the VPC's token) lets the nag rules evaluate it.
        endpoint_sg.add_ingress_rule(
            ec2.Peer.ipv4(vpc_cidr), ec2.Port.tcp(443), "HTTPS from the VPC"
        )
        for name, service in INTERFACE_ENDPOINT_SERVICES.items():
            self.vpc.add_interface_endpoint(
                f"{name}Endpoint",
                service=service,
                subnets=self.endpoint_subnets,
                security_groups=[endpoint_sg],
                private_dns_enabled=True,
                open=False,  # the group above already admits HTTPS from the VPC
            )
