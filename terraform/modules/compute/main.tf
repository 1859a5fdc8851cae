# Compute: ECS Fargate services behind one HTTPS load balancer.
#
# | service           | image   | command                                   | reached at               |
# | ----------------- | ------- | ----------------------------------------- | ------------------------ |
# | api               | api     | uvicorn via `ragctl serve` (image CMD)    | ALB, default rule        |
# | worker            | worker  | `ragctl stream --metrics-port 9464`       | nothing (consumes Kafka) |
# | dagster-webserver | dagster | `dagster-webserver`                       | ALB, dagster_host + Cognito sign-in; dagster-webserver:3000 inside |
# | dagster-daemon    | dagster | `dagster-daemon run` (exactly one)        | nothing                  |
# | dagster-code      | dagster | `dagster code-server start` (gRPC :4000)  | dagster-code:4000 (Service Connect) |
# | dagster-erasure   | dagster | `dagster code-server start` (gRPC :4001)  | dagster-erasure:4001 (Service Connect) |
#
# Dagster has two code locations (docker/dagster-workspace.yaml), and the default run launcher
# runs each run in its location's container, with that service's role: `dagster-code` serves
# indexing (rag_assets.locations:indexing) and may not delete object versions;
# `dagster-erasure` serves governance, the `rtbf` job (rag_assets.locations:governance), with
# the erasure role, the only one allowed to (docs/deployment.md).
# The `erasure` task definition (no service) is the fallback with the same role: it runs
# `ragctl forget --resume ID` in process, for a request whose run did not finish.
terraform {
  required_providers {
    aws = { source = "hashicorp/aws" }
  }
}

locals {
  log_group = "/rag/${var.name}/services"
  images = {
    api               = "${var.registry}/${var.name}/api:${var.image_tag}"
    worker            = "${var.registry}/${var.name}/worker:${var.image_tag}"
    dagster-webserver = "${var.registry}/${var.name}/dagster:${var.image_tag}"
    dagster-daemon    = "${var.registry}/${var.name}/dagster:${var.image_tag}"
    dagster-code      = "${var.registry}/${var.name}/dagster:${var.image_tag}"
    dagster-erasure   = "${var.registry}/${var.name}/dagster:${var.image_tag}"
    erasure           = "${var.registry}/${var.name}/dagster:${var.image_tag}"
  }
  sm = { for key, name in var.secret_names : key => "aws-sm://${name}" }
  # The task role of a task definition not named like its role (modules/iam): the governance
  # code location's runs erase.
  task_roles = { dagster-erasure = "erasure" }

  platform_env = merge(
    {
      RAG_HOME                    = "/var/lib/rag"
      RAG_OBJECT_STORE_URI        = "s3://${var.documents_bucket}"
      RAG_INDEX_URI               = "s3://${var.index_bucket}"
      RAG_S3_REGION               = var.region
      AWS_REGION                  = var.region
      RAG_KAFKA_BOOTSTRAP_SERVERS = var.kafka_bootstrap_servers
      RAG_KAFKA_AUTH              = "msk-iam" # SASL/OAUTHBEARER with the task role, signed for RAG_S3_REGION
      RAG_CACHE_URL               = "${local.sm.cache}#url"
      RAG_ORCHESTRATOR            = "dagster"
      RAG_DAGSTER_URL             = "http://dagster-webserver:3000"
      RAG_API_URL                 = "https://${var.api_host}"
      RAG_PROFILE                 = var.profile
    },
    var.llm_base_url == "" ? {} : {
      RAG_LLM_BASE_URL = var.llm_base_url
      RAG_LLM_API_KEY  = "${local.sm.llm}#api_key"
    },
    var.snowflake == null ? {} : {
      RAG_WAREHOUSE_TARGET      = "snowflake"
      RAG_SNOWFLAKE_ACCOUNT     = var.snowflake.account
      RAG_SNOWFLAKE_USER        = var.snowflake.user
      RAG_SNOWFLAKE_DATABASE    = var.snowflake.database
      RAG_SNOWFLAKE_SCHEMA      = var.snowflake.schema
      RAG_SNOWFLAKE_WAREHOUSE   = var.snowflake.warehouse
      RAG_SNOWFLAKE_ROLE        = var.snowflake.role
      RAG_SNOWFLAKE_PRIVATE_KEY = "${local.sm.snowflake}#private_key" # the key pair terraform/snowflake registers
    },
  )
  dagster_env = {
    DAGSTER_PG_HOST = var.dagster_db.host
    DAGSTER_PG_USER = var.dagster_db.username
    DAGSTER_PG_DB   = var.dagster_db.name
  }
  dagster_secrets = [{ name = "DAGSTER_PG_PASSWORD", valueFrom = "${var.secret_arns.dagster_db}:password::" }]

  # A probe the image can run without curl: the services answer on loopback.
  http_probe = "python -c \"import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:%d%s', timeout=3).status != 200)\""

  tasks = {
    api = {
      cpu = var.api.cpu, memory = var.api.memory, port = 8000, command = null
      env = merge(local.platform_env, {
        RAG_AUTH_MODE     = "oidc"
        RAG_OIDC_ISSUER   = var.oidc_issuer
        RAG_OIDC_AUDIENCE = var.oidc_audience
        # Cognito access tokens name their app client in client_id (no aud), prefix each scope
        # with the resource server's identifier (modules/identity: https://<api_host>) and
        # list the user's groups in cognito:groups.
        RAG_OIDC_AUDIENCE_CLAIM = "client_id"
        RAG_OIDC_SCOPE_PREFIX   = "https://${var.api_host}/"
        RAG_OIDC_GROUPS_CLAIM   = "cognito:groups"
      })
      secrets = []
      health  = format(local.http_probe, 8000, "/livez")
    }
    worker = {
      cpu    = var.worker.cpu, memory = var.worker.memory, port = 9464, command = null
      env    = local.platform_env, secrets = []
      health = format(local.http_probe, 9464, "/healthz")
    }
    dagster-webserver = {
      cpu     = 1024, memory = 2048, port = 3000
      command = ["dagster-webserver", "-w", "/opt/dagster/workspace.yaml", "-h", "0.0.0.0", "-p", "3000"]
      env     = merge(local.platform_env, local.dagster_env), secrets = local.dagster_secrets
      health  = format(local.http_probe, 3000, "/server_info")
    }
    dagster-daemon = {
      cpu     = 512, memory = 1024, port = null
      command = ["dagster-daemon", "run", "-w", "/opt/dagster/workspace.yaml"]
      env     = merge(local.platform_env, local.dagster_env), secrets = local.dagster_secrets
      health  = "dagster-daemon liveness-check"
    }
    dagster-code = {
      cpu     = var.dagster_code.cpu, memory = var.dagster_code.memory, port = 4000
      command = ["dagster", "code-server", "start", "-m", "rag_assets.locations", "-a", "indexing", "-h", "0.0.0.0", "-p", "4000"]
      env     = merge(local.platform_env, local.dagster_env), secrets = local.dagster_secrets
      health  = "dagster api grpc-health-check -p 4000"
    }
    dagster-erasure = {
      cpu     = var.dagster_code.cpu, memory = var.dagster_code.memory, port = 4001
      command = ["dagster", "code-server", "start", "-m", "rag_assets.locations", "-a", "governance", "-h", "0.0.0.0", "-p", "4001"]
      env     = merge(local.platform_env, local.dagster_env), secrets = local.dagster_secrets
      health  = "dagster api grpc-health-check -p 4001"
    }
    erasure = {
      cpu     = var.dagster_code.cpu, memory = var.dagster_code.memory, port = null
      command = null # given per run: `ragctl forget --resume ID` (docs/deployment.md)
      env     = merge(local.platform_env, local.dagster_env, { RAG_ORCHESTRATOR = "in_process" }), secrets = local.dagster_secrets
      health  = null
    }
  }
  # Each service runs the task definition of its name.
  services = {
    api               = { desired = var.api.min, target_group = "api" }
    worker            = { desired = var.worker.min, target_group = null }
    dagster-webserver = { desired = 1, target_group = "dagster" }
    dagster-daemon    = { desired = 1, target_group = null }
    dagster-code      = { desired = 1, target_group = null }
    dagster-erasure   = { desired = 1, target_group = null }
  }
  autoscaled = {
    api    = var.api
    worker = var.worker
  }
}

resource "aws_ecs_cluster" "this" {
  name = var.name
  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_service_discovery_http_namespace" "this" {
  name        = "${var.name}.internal"
  description = "Service Connect names of the platform's services"
}

resource "aws_cloudwatch_log_group" "services" {
  name              = local.log_group
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

# --- network access -------------------------------------------------------------------

resource "aws_security_group" "alb" {
  name        = "${var.name}-alb"
  description = "The public HTTPS load balancer"
  vpc_id      = var.vpc_id
  ingress {
    description = "HTTPS from clients"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = var.allowed_client_cidrs
  }
  ingress {
    description = "HTTP, redirected to HTTPS"
    from_port   = 80
    to_port     = 80
    protocol    = "tcp"
    cidr_blocks = var.allowed_client_cidrs
  }
  egress {
    description = "To the services in the VPC"
    from_port   = 0
    to_port     = 65535
    protocol    = "tcp"
    cidr_blocks = [var.vpc_cidr]
  }
}

resource "aws_security_group" "service" {
  for_each    = local.services
  name        = "${var.name}-${each.key}"
  description = "ECS service ${each.key}"
  vpc_id      = var.vpc_id
  egress {
    description = "Inside the VPC: databases, Kafka, Redis, other services, AWS endpoints"
    from_port   = 0
    to_port     = 65535
    protocol    = "tcp"
    cidr_blocks = [var.vpc_cidr]
  }
  egress {
    description     = "S3 through the gateway endpoint"
    from_port       = 443
    to_port         = 443
    protocol        = "tcp"
    prefix_list_ids = [var.s3_prefix_list_id]
  }
}

resource "aws_security_group" "erasure" {
  #checkov:skip=CKV2_AWS_5:Attached per run: `aws ecs run-task` of the erasure task names it (docs/deployment.md)
  name        = "${var.name}-erasure"
  description = "One-off erasure tasks"
  vpc_id      = var.vpc_id
  egress {
    description = "Inside the VPC: databases, Redis, AWS endpoints"
    from_port   = 0
    to_port     = 65535
    protocol    = "tcp"
    cidr_blocks = [var.vpc_cidr]
  }
  egress {
    description     = "S3 through the gateway endpoint"
    from_port       = 443
    to_port         = 443
    protocol        = "tcp"
    prefix_list_ids = [var.s3_prefix_list_id]
  }
}

resource "aws_vpc_security_group_ingress_rule" "api_from_alb" {
  security_group_id            = aws_security_group.service["api"].id
  referenced_security_group_id = aws_security_group.alb.id
  from_port                    = 8000
  to_port                      = 8000
  ip_protocol                  = "tcp"
  description                  = "API from the load balancer"
}

resource "aws_vpc_security_group_ingress_rule" "webserver_from_alb" {
  security_group_id            = aws_security_group.service["dagster-webserver"].id
  referenced_security_group_id = aws_security_group.alb.id
  from_port                    = 3000
  to_port                      = 3000
  ip_protocol                  = "tcp"
  description                  = "Dagster UI from the load balancer"
}

# The API submits runs and the worker records its materializations through the webserver.
resource "aws_vpc_security_group_ingress_rule" "webserver_from_platform" {
  for_each                     = toset(["api", "worker"])
  security_group_id            = aws_security_group.service["dagster-webserver"].id
  referenced_security_group_id = aws_security_group.service[each.key].id
  from_port                    = 3000
  to_port                      = 3000
  ip_protocol                  = "tcp"
  description                  = "Dagster GraphQL from ${each.key} (RAG_ORCHESTRATOR=dagster)"
}

resource "aws_vpc_security_group_ingress_rule" "code_from_dagster" {
  for_each                     = toset(["dagster-webserver", "dagster-daemon"])
  security_group_id            = aws_security_group.service["dagster-code"].id
  referenced_security_group_id = aws_security_group.service[each.key].id
  from_port                    = 4000
  to_port                      = 4000
  ip_protocol                  = "tcp"
  description                  = "Code location gRPC from ${each.key}"
}

resource "aws_vpc_security_group_ingress_rule" "erasure_code_from_dagster" {
  for_each                     = toset(["dagster-webserver", "dagster-daemon"])
  security_group_id            = aws_security_group.service["dagster-erasure"].id
  referenced_security_group_id = aws_security_group.service[each.key].id
  from_port                    = 4001
  to_port                      = 4001
  ip_protocol                  = "tcp"
  description                  = "Governance code location gRPC from ${each.key}"
}

# --- load balancer --------------------------------------------------------------------

resource "aws_lb" "this" {
  #checkov:skip=CKV_AWS_91:Requests are logged by WAF (modules/waf, Authorization redacted) and by the API; ALB access logs would need an SSE-S3 bucket outside the customer key
  #checkov:skip=CKV2_AWS_28:The web ACL is associated in modules/waf (aws_wafv2_web_acl_association.alb), which checkov does not follow across modules; tests/test_terraform_policy.py checks it
  #checkov:skip=CKV2_AWS_20:The HTTP listener only redirects to HTTPS (checkov misreads the redirect)
  name                       = var.name
  load_balancer_type         = "application"
  internal                   = false
  subnets                    = var.public_subnet_ids
  security_groups            = [aws_security_group.alb.id]
  drop_invalid_header_fields = true
  enable_deletion_protection = var.deletion_protection
}

resource "aws_lb_target_group" "this" {
  #checkov:skip=CKV_AWS_378:TLS ends at the load balancer; from there to the tasks the traffic stays in private subnets, closed by security groups
  for_each    = { api = { port = 8000, health = "/readyz" }, dagster = { port = 3000, health = "/server_info" } }
  name        = "${var.name}-${each.key}"
  port        = each.value.port
  protocol    = "HTTP"
  target_type = "ip"
  vpc_id      = var.vpc_id
  health_check {
    path                = each.value.health
    matcher             = "200"
    interval            = 15
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
  deregistration_delay = 30
}

resource "aws_lb_listener" "http" {
  #checkov:skip=CKV_AWS_2:Plain HTTP only answers with a redirect to HTTPS
  #checkov:skip=CKV_AWS_103:Plain HTTP only answers with a redirect to HTTPS
  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"
  default_action {
    type = "redirect"
    redirect {
      port        = "443"
      protocol    = "HTTPS"
      status_code = "HTTP_301"
    }
  }
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn
  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.this["api"].arn
  }
}

# The Dagster UI: people sign in through Cognito before the load balancer forwards.
resource "aws_lb_listener_rule" "dagster" {
  listener_arn = aws_lb_listener.https.arn
  priority     = 10
  condition {
    host_header {
      values = [var.dagster_host]
    }
  }
  action {
    type = "authenticate-cognito"
    authenticate_cognito {
      user_pool_arn       = var.cognito.user_pool_arn
      user_pool_client_id = var.cognito.client_id
      user_pool_domain    = var.cognito.domain
    }
  }
  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.this["dagster"].arn
  }
}

# --- tasks and services ---------------------------------------------------------------

resource "aws_ecs_task_definition" "this" {
  for_each                 = local.tasks
  family                   = "${var.name}-${each.key}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = each.value.cpu
  memory                   = each.value.memory
  execution_role_arn       = var.execution_role_arn
  task_role_arn            = var.task_role_arns[lookup(local.task_roles, each.key, each.key)]
  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }
  # Writable scratch space (RAG_HOME, DAGSTER_HOME, /tmp) on an otherwise read-only root.
  volume {
    name = "scratch"
  }
  volume {
    name = "tmp"
  }
  container_definitions = jsonencode([merge(
    {
      name                   = each.key
      image                  = local.images[each.key]
      essential              = true
      readonlyRootFilesystem = true
      user                   = "10001:10001"
      environment            = [for key in sort(keys(each.value.env)) : { name = key, value = each.value.env[key] }]
      secrets                = each.value.secrets
      mountPoints = [
        { sourceVolume = "scratch", containerPath = "/var/lib/rag", readOnly = false },
        { sourceVolume = "tmp", containerPath = "/tmp", readOnly = false },
      ]
      portMappings = each.value.port == null ? [] : [{ name = each.key, containerPort = each.value.port, protocol = "tcp" }]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = local.log_group
          awslogs-region        = var.region
          awslogs-stream-prefix = each.key
        }
      }
    },
    each.value.command == null ? {} : { command = each.value.command },
    each.value.health == null ? {} : {
      healthCheck = { command = ["CMD-SHELL", each.value.health], interval = 30, timeout = 5, retries = 3, startPeriod = 120 }
    },
  )])
}

resource "aws_ecs_service" "this" {
  for_each                          = local.services
  name                              = "${var.name}-${each.key}"
  cluster                           = aws_ecs_cluster.this.id
  task_definition                   = aws_ecs_task_definition.this[each.key].arn
  desired_count                     = each.value.desired
  launch_type                       = "FARGATE"
  platform_version                  = "LATEST"
  enable_execute_command            = false
  propagate_tags                    = "SERVICE"
  health_check_grace_period_seconds = each.value.target_group == null ? null : 180
  # The daemon must never run twice: stop the old task before starting the new one.
  deployment_minimum_healthy_percent = each.key == "dagster-daemon" ? 0 : 100
  deployment_maximum_percent         = each.key == "dagster-daemon" ? 100 : 200
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.service[each.key].id]
    assign_public_ip = false
  }
  dynamic "load_balancer" {
    for_each = each.value.target_group == null ? [] : [each.value.target_group]
    content {
      target_group_arn = aws_lb_target_group.this[load_balancer.value].arn
      container_name   = each.key
      container_port   = local.tasks[each.key].port
    }
  }
  service_connect_configuration {
    enabled   = true
    namespace = aws_service_discovery_http_namespace.this.arn
    dynamic "service" {
      for_each = contains(["dagster-code", "dagster-erasure", "dagster-webserver"], each.key) ? [each.key] : []
      content {
        port_name = service.value
        client_alias {
          dns_name = service.value
          port     = local.tasks[service.value].port
        }
      }
    }
  }
  lifecycle {
    ignore_changes = [desired_count]
  }
  depends_on = [aws_lb_listener.https]
}

# --- autoscaling ----------------------------------------------------------------------

resource "aws_appautoscaling_target" "this" {
  for_each           = local.autoscaled
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.this[each.key].name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = each.value.min
  max_capacity       = each.value.max
}

resource "aws_appautoscaling_policy" "cpu" {
  for_each           = local.autoscaled
  name               = "${var.name}-${each.key}-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this[each.key].service_namespace
  resource_id        = aws_appautoscaling_target.this[each.key].resource_id
  scalable_dimension = aws_appautoscaling_target.this[each.key].scalable_dimension
  target_tracking_scaling_policy_configuration {
    target_value       = 60
    scale_in_cooldown  = 300
    scale_out_cooldown = 60
    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

resource "aws_appautoscaling_policy" "api_requests" {
  name               = "${var.name}-api-requests"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this["api"].service_namespace
  resource_id        = aws_appautoscaling_target.this["api"].resource_id
  scalable_dimension = aws_appautoscaling_target.this["api"].scalable_dimension
  target_tracking_scaling_policy_configuration {
    target_value       = var.api.requests_per_target
    scale_in_cooldown  = 300
    scale_out_cooldown = 60
    predefined_metric_specification {
      predefined_metric_type = "ALBRequestCountPerTarget"
      resource_label         = "${aws_lb.this.arn_suffix}/${aws_lb_target_group.this["api"].arn_suffix}"
    }
  }
}
