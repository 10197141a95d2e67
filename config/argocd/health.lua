-- Argo CD health check for ipv6migration.io/MigrationPlan.
-- Install it in argocd-cm as `resource.customizations.health.ipv6migration.io_MigrationPlan`.
-- It reads the kstatus conditions the operator writes, so Argo CD and Flux agree on what is done, in progress and
-- failed (only Argo CD knows Suspended: kstatus shows a suspended, unfinished plan as InProgress).
-- Argo CD runs scripts from argocd-cm without the string, math and io libraries unless useOpenLibs is set,
-- so this uses only the base library (`..`, ipairs, tostring).
local hs = {}

local function condition(conditions, wanted)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == wanted then
      return c
    end
  end
  return nil
end

local function isTrue(c)
  return c ~= nil and c.status == "True"
end

local function messageOf(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end
local status = obj.status

-- Conditions written for an older spec say nothing about the current one: until the operator has seen this
-- generation, a Ready=True left over from the last rollout would make a just-changed plan look finished.
if status == nil or status.observedGeneration == nil or (generation ~= nil and status.observedGeneration < generation) then
  hs.status = "Progressing"
  if generation ~= nil then
    hs.message = "Waiting for the controller to observe generation " .. tostring(generation)
  else
    hs.message = "Waiting for the controller"
  end
  return hs
end

local conditions = status.conditions
local stalled = condition(conditions, "Stalled")
local ready = condition(conditions, "Ready")
local reconciling = condition(conditions, "Reconciling")

-- Stalled first: a plan that needs a person must not hide behind suspend or a stale Ready.
if isTrue(stalled) then
  hs.status = "Degraded"
  hs.message = messageOf(stalled, "Stalled")
  return hs
end

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "spec.suspend is true: " .. messageOf(ready, "no Service is changed")
  return hs
end

if isTrue(ready) then
  hs.status = "Healthy"
  hs.message = messageOf(ready, "Ready")
  return hs
end

if isTrue(reconciling) then
  hs.status = "Progressing"
  hs.message = messageOf(reconciling, "Reconciling")
  return hs
end

-- The operator always sets Ready or Reconciling; if neither is True (an older or newer operator), show the plan as
-- not done rather than green.
hs.status = "Progressing"
hs.message = messageOf(ready, "Waiting for the controller")
return hs
