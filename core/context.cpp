#include <core/context.hpp>

#include <atomic>

namespace aio::detail {

namespace {
thread_local ContextImpl* tls_context = nullptr;  // null: the thread's own context
thread_local ContextImpl tls_thread_context;
}  // namespace

ContextImpl& current_context() noexcept { return tls_context ? *tls_context : tls_thread_context; }

bool current_context_has_values() noexcept {
  return tls_context ? static_cast<bool>(tls_context->vars) : static_cast<bool>(tls_thread_context.vars);
}

std::shared_ptr<ContextImpl> copy_current_context() {
  auto copy = std::make_shared<ContextImpl>();
  copy->vars = current_context().vars;
  return copy;
}

std::uint64_t next_context_var_id() noexcept {
  static std::atomic<std::uint64_t> counter{0};
  return ++counter;
}

ContextScope::ContextScope(ContextImpl* context) : entered_(context) {
  if (!entered_) return;
  if (entered_->entered) throw std::runtime_error("cannot enter context: the Context is already entered");
  entered_->entered = true;
  previous_ = tls_context;
  tls_context = entered_;
}

ContextScope::~ContextScope() {
  if (!entered_) return;
  entered_->entered = false;
  tls_context = previous_;
}

}  // namespace aio::detail
