// Everything of aiocpp's core in one include.
#pragma once

#include <core/context.hpp>
#include <core/errors.hpp>
#include <core/event_loop.hpp>
#include <core/events.hpp>
#include <core/executor.hpp>
#include <core/future.hpp>
#include <core/handle.hpp>
#include <core/log.hpp>
#include <core/runners.hpp>
#include <core/shield.hpp>
#include <core/task.hpp>
#include <core/task_group.hpp>
#include <core/tasks.hpp>
#include <core/threadsafe.hpp>
#include <core/timeouts.hpp>
#include <core/wait.hpp>
