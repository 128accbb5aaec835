// Move-only type-erased callables with small-buffer storage.
//
// std::function needs copyable targets and allocates for anything larger than
// two pointers; the loop stores one callable per scheduled callback, so it
// uses this instead: targets up to `InlineSize` bytes live inside the object,
// larger ones go to the heap once.
#pragma once

#include <concepts>
#include <cstddef>
#include <new>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>

namespace aio::detail {

// Demangled name of a callable's type, for debug output.
std::string callable_name(const std::type_info& type);

// A callable that says what it is in messages ("<Task pending name=...>")
// has `std::string describe() const`; others are named by their type.
template <class T>
concept Describable = requires(const T& t) {
  { t.describe() } -> std::convertible_to<std::string>;
};

template <class Signature, std::size_t InlineSize>
class UniqueFunction;

template <class R, class... Args, std::size_t InlineSize>
class UniqueFunction<R(Args...), InlineSize> {
 public:
  UniqueFunction() noexcept = default;

  template <class F>
  requires(!std::is_same_v<std::remove_cvref_t<F>, UniqueFunction> &&
           std::is_invocable_r_v<R, std::decay_t<F>&, Args...>)
      UniqueFunction(F&& f) {  // NOLINT(google-explicit-constructor): a callable converts implicitly
    using Target = std::decay_t<F>;
    if constexpr (fits_inline<Target>) {
      ::new (static_cast<void*>(storage_)) Target(std::forward<F>(f));
      ops_ = &inline_ops<Target>;
    } else {
      *reinterpret_cast<Target**>(storage_) = new Target(std::forward<F>(f));
      ops_ = &heap_ops<Target>;
    }
  }

  UniqueFunction(UniqueFunction&& other) noexcept : ops_(other.ops_) {
    if (ops_) {
      ops_->move(storage_, other.storage_);
      other.ops_ = nullptr;
    }
  }

  UniqueFunction& operator=(UniqueFunction&& other) noexcept {
    if (this != &other) {
      reset();
      if (other.ops_) {
        other.ops_->move(storage_, other.storage_);
        ops_ = std::exchange(other.ops_, nullptr);
      }
    }
    return *this;
  }

  UniqueFunction(const UniqueFunction&) = delete;
  UniqueFunction& operator=(const UniqueFunction&) = delete;
  ~UniqueFunction() { reset(); }

  // Destroys the target now (its captures are released).
  void reset() noexcept {
    if (auto* ops = std::exchange(ops_, nullptr)) ops->destroy(storage_);
  }

  explicit operator bool() const noexcept { return ops_ != nullptr; }

  R operator()(Args... args) { return ops_->invoke(storage_, std::forward<Args>(args)...); }

  // The target's type, for debug messages ("Executing <lambda in f()> took 0.2 s").
  const std::type_info& target_type() const noexcept { return ops_ ? *ops_->type : typeid(void); }

  // True when the target has a describe() of its own (a task's step).
  bool describes_itself() const noexcept { return ops_ && ops_->describable; }
  // The target's describe(), or its type's name.
  std::string describe() const { return ops_ ? ops_->describe(storage_) : std::string("<empty>"); }

 private:
  struct Ops {
    R (*invoke)(void*, Args&&...);
    void (*move)(void* dst, void* src) noexcept;
    void (*destroy)(void*) noexcept;
    const std::type_info* type;
    std::string (*describe)(const void*);
    bool describable;
  };

  template <class T>
  static std::string describe_target(const T& target) {
    if constexpr (Describable<T>)
      return target.describe();
    else
      return callable_name(typeid(T));
  }

  template <class T>
  static constexpr bool fits_inline =
      sizeof(T) <= InlineSize && alignof(T) <= alignof(std::max_align_t) && std::is_nothrow_move_constructible_v<T>;

  template <class T>
  static constexpr Ops inline_ops{
      [](void* p, Args&&... args) -> R { return (*static_cast<T*>(p))(std::forward<Args>(args)...); },
      [](void* dst, void* src) noexcept {
        ::new (dst) T(std::move(*static_cast<T*>(src)));
        static_cast<T*>(src)->~T();
      },
      [](void* p) noexcept { static_cast<T*>(p)->~T(); },
      &typeid(T),
      [](const void* p) { return describe_target(*static_cast<const T*>(p)); },
      Describable<T>,
  };

  template <class T>
  static constexpr Ops heap_ops{
      [](void* p, Args&&... args) -> R { return (**static_cast<T**>(p))(std::forward<Args>(args)...); },
      [](void* dst, void* src) noexcept { *static_cast<T**>(dst) = *static_cast<T**>(src); },
      [](void* p) noexcept { delete *static_cast<T**>(p); },
      &typeid(T),
      [](const void* p) { return describe_target(**static_cast<T* const*>(p)); },
      Describable<T>,
  };

  alignas(std::max_align_t) unsigned char storage_[InlineSize];
  const Ops* ops_ = nullptr;
};

// What call_soon and friends store: 64 bytes hold a lambda capturing a few
// references plus a nested 48-byte UniqueFunction (future done-callbacks).
using Callback = UniqueFunction<void(), 64>;

}  // namespace aio::detail
