/** The demo services by name, loaded on demand; an orchestrator can iterate DEMO_SERVICES. */
import type { ServiceDefinition } from './shared/service.js';

export const SERVICES: Record<string, () => Promise<ServiceDefinition>> = {
  gateway: async () => (await import('./gateway/service.js')).gateway,
  users: async () => (await import('./users/service.js')).users,
  catalog: async () => (await import('./catalog/service.js')).catalog,
  inventory: async () => (await import('./inventory/service.js')).inventory,
  orders: async () => (await import('./orders/service.js')).orders,
  payments: async () => (await import('./payments/service.js')).payments,
  notifications: async () => (await import('./notifications/service.js')).notifications,
};

export const DEMO_SERVICES = Object.keys(SERVICES);
